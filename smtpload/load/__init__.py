"""How a run is driven: the open-loop arrival schedule (sans-IO; the runner in net/ uses it)."""
