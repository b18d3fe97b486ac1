"""processing: every dossier's resolution, deadline and digitization, with the officers' API."""
