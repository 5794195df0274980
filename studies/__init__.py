"""Study presets shipped with nas-proxy; installed as the package data ``nas_proxy.studies`` (see pyproject.toml)."""
