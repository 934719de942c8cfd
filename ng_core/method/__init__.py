"""Neural Gate itself: localize (mask learning), locality, losses, neuron scores, gated edit, pipeline, interventions, presets, run bundles."""
