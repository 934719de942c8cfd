"""Files on disk: safe reads, atomic files and folders, run-bundle checks, run folders and their owners, locks."""
