"""Where definitions live: the project file (config as code) or the metadata database (what the API and
the UI edit), behind one ``Repository`` protocol."""
