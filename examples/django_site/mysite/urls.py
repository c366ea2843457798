from django.http import HttpResponse, JsonResponse
from django.urls import path


def index(request):
    return HttpResponse("<!DOCTYPE html>\n<title>django_site example</title>\n"
                        "<h1>Hello from Django</h1>\n")


def health(request):
    return JsonResponse({"status": "ok", "framework": "django"})


urlpatterns = [
    path("", index),
    path("health", health),
]
