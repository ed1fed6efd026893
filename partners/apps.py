from django.apps import AppConfig
from django.db import DEFAULT_DB_ALIAS
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class PartnersConfig(AppConfig):
    name = "partners"
    verbose_name = _("Partners")

    def ready(self):
        from epnhook.logging import TOKEN_SOURCES

        from . import (
            snapshot,  # noqa: F401  (its model receivers: a change saved here is seen at once)
            tokens,  # noqa: F401  (connects the settings-changed receiver)
        )
        from .api import held_secrets

        # The API tokens this process holds are hidden from every log line and email, like webhook tokens.
        if held_secrets not in TOKEN_SOURCES:
            TOKEN_SOURCES.append(held_secrets)
        post_migrate.connect(sync_built_in_networks, sender=self)


def sync_built_in_networks(using=DEFAULT_DB_ALIAS, **kwargs):
    """Give every built-in network its Network row (its tokens hang on it), kept in step with its code."""
    from .models import Network
    from .registry import PARTNERS

    for partner in PARTNERS.values():
        Network.objects.using(using).update_or_create(slug=partner.slug,
                                                      defaults={"name": partner.name, "built_in": True})
