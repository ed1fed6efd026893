"""Machine endpoints skip the middleware that exists for people in a browser.

Most of settings.MIDDLEWARE serves the admin: sessions, language, CSRF, authentication, messages,
login lockout (axes), frame options. A postback sender uses none of it, yet on the webhook that chain
cost about a fifth of the CPU of a stored postback (docs/PERFORMANCE.md). A view marked with
`@machine_endpoint` is called through SecurityMiddleware alone (the HTTPS redirect and the security
headers still apply) after the Host check that CommonMiddleware would have made (ALLOWED_HOSTS);
every other request goes down the whole chain as usual.
"""

from django.core.handlers.exception import convert_exception_to_response
from django.middleware.security import SecurityMiddleware
from django.urls import Resolver404, get_resolver

MARK = "machine_endpoint"


def machine_endpoint(view):
    """Mark `view` to run past the browser-only middleware; it must need no session, user,
    language, CSRF token or message storage."""
    setattr(view, MARK, True)
    return view


class MachineEndpointMiddleware:
    """First in MIDDLEWARE: routes a request for a @machine_endpoint view past the rest of the chain.

    The request still passes through Django's handler (request_started/finished, so database
    connections are managed as for any request). An error in the view, or a Host outside
    ALLOWED_HOSTS, becomes the usual logged 500 or 400 inside SecurityMiddleware, so that answer
    carries the security headers too.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.call_machine_view = SecurityMiddleware(convert_exception_to_response(self._call_view))

    def __call__(self, request):
        try:
            match = get_resolver().resolve(request.path_info)
        except Resolver404:
            return self.get_response(request)
        if not getattr(match.func, MARK, False):
            return self.get_response(request)
        request.resolver_match = match
        return self.call_machine_view(request)

    @staticmethod
    def _call_view(request):
        request.get_host()  # raises DisallowedHost (a 400) for a Host outside ALLOWED_HOSTS
        match = request.resolver_match
        response = match.func(request, *match.args, **match.kwargs)
        # What CommonMiddleware would add: without it gunicorn answers HTTP/1.1 chunked and closes
        # an HTTP/1.0 sender's connection.
        if not response.streaming and not response.has_header("Content-Length"):
            response.headers["Content-Length"] = str(len(response.content))
        return response
