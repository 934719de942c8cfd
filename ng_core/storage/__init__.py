"""Files on disk: safe reads, atomic folders, run-bundle checks, run folders and their owners, locks."""
