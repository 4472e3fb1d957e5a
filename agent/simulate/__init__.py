"""``sales-agent simulate``: the agent's main job run offline as scripted text calls."""
