"""JSON error pages: a postback sender parses what we answer, whatever went wrong."""

from django.http import JsonResponse


def not_found(request, exception=None):
    return JsonResponse({"error": "not found"}, status=404)


def server_error(request):
    return JsonResponse({"error": "internal error; the request was recorded for the admins"}, status=500)
