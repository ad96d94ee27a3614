"""The snapshot's sections of ``LLMPROXY_CONFIG``, read from one parse per snapshot build.

``build_runtime`` calls ``read_site_config`` once and hands the result to each section
reader, so a rebuild parses the file once however many sections it takes. A file that
does not parse leaves every section on its fallback, and each says so in the log::

    site = read_site_config()
    images = images_settings(site)      # ImageSettings, the defaults when the file is bad
    limits = limit_settings(site)       # from the file, else settings.LLMPROXY["LIMITS"]
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings

from llmproxy.config import Config, ConfigError, load, loads
from llmproxy.netguard import ImageSettings
from llmproxy.runtime import LimitSettings, ResponsesSettings, RoutingSettings
from llmproxy.throttle import ClientSettings

log = logging.getLogger("llmproxy.runtime")


@dataclass(frozen=True, slots=True)
class SiteConfig:
    """``LLMPROXY_CONFIG`` parsed (``config``) or why it was not (``error``).

    Without a file ``config`` is the empty config with the ``LLMPROXY_*`` environment applied.
    """

    path: str | None
    config: Config | None
    error: ConfigError | OSError | None = None


def read_site_config() -> SiteConfig:
    """Parse ``LLMPROXY_CONFIG`` (re-read at every snapshot build, so editing it hot-reloads)."""
    path = settings.LLMPROXY.get("CONFIG")
    try:
        return SiteConfig(path, load(path) if path else loads(""))
    except (ConfigError, OSError) as exc:
        return SiteConfig(path, None, exc)


def images_settings(site: SiteConfig) -> ImageSettings:
    """The ``images:`` section, else the defaults with the ``LLMPROXY_IMAGES_*`` environment applied
    (``LLMPROXY_IMAGES_ALLOW_PRIVATE`` for test setups)."""
    if site.config is None:
        log.error("images settings not applied, keeping the defaults (public hosts only): %s", site.error)
        return ImageSettings()
    return site.config.images


def responses_settings(site: SiteConfig) -> ResponsesSettings:
    """The ``responses:`` section (retention of stored responses), else the defaults with the
    ``LLMPROXY_RESPONSES_*`` environment applied."""
    if site.config is None:
        log.error("responses settings not applied, keeping the defaults: %s", site.error)
        return ResponsesSettings()
    return site.config.responses


def clients_settings(site: SiteConfig) -> ClientSettings:
    """The ``clients:`` section (failed-key throttling, trusted proxies), else the defaults with the
    ``LLMPROXY_CLIENTS_*`` environment applied."""
    if site.config is None:
        log.error("clients settings not applied, keeping the defaults: %s", site.error)
        return ClientSettings()
    return site.config.clients


def routing_settings(site: SiteConfig) -> RoutingSettings:
    """The file's ``routing:`` section, else ``settings.LLMPROXY["ROUTING"]``, else the defaults."""
    if site.path:
        if site.config is not None:
            return site.config.routing
        log.error("routing settings from %s not applied, keeping the defaults: %s", site.path, site.error)
    try:
        return RoutingSettings.from_mapping(settings.LLMPROXY.get("ROUTING"))
    except ValueError as exc:
        log.error("ignoring invalid routing settings, using the defaults: %s", exc)
        return RoutingSettings()


def limit_settings(site: SiteConfig) -> LimitSettings:
    """The file's ``limits:`` section, else ``settings.LLMPROXY["LIMITS"]``; ``LLMPROXY_TIME_ZONE``."""
    tz = settings.LLMPROXY.get("TIME_ZONE") or "UTC"
    try:
        if site.path:
            if site.config is not None:
                return LimitSettings.from_mapping(site.config.limits, time_zone=tz)
            log.error("limits settings from %s not applied, keeping the defaults: %s", site.path, site.error)
        return LimitSettings.from_mapping(settings.LLMPROXY.get("LIMITS"), time_zone=tz)
    except ValueError as exc:
        log.error("ignoring invalid limits settings, using the defaults: %s", exc)
        return LimitSettings()
