"""``smartingest serve``: the REST API (and later the web UI) over the service layer."""
