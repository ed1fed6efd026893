"""JSON error pages: a postback sender parses what we answer, whatever went wrong."""

from django.http import JsonResponse

from orders.clientip import client_ip
from partners.tokens import log_near_miss


def not_found(request, exception=None):
    # /Webhook/<token>, /webhook//<token>, /webhook/<token>/x: no route, but a sender's lost postback.
    log_near_miss(request.path, client_ip(request))
    return JsonResponse({"error": "not found"}, status=404)


def server_error(request):
    return JsonResponse({"error": "internal error; the request was recorded for the admins"}, status=500)
