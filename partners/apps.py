from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PartnersConfig(AppConfig):
    name = "partners"
    verbose_name = _("Partners")

    def ready(self):
        from epnhook.logging import TOKEN_SOURCES

        from .api import held_secrets

        # The API tokens this process holds are hidden from every log line and email, like webhook tokens.
        if held_secrets not in TOKEN_SOURCES:
            TOKEN_SOURCES.append(held_secrets)
