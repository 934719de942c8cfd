"""The dashboard's typed API (StudioSession), the demo story and the shareable HTML report."""
