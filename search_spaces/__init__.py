"""Search spaces shipped with nas-proxy; installed as package data ``nas_proxy.search_spaces`` (see pyproject.toml)."""
