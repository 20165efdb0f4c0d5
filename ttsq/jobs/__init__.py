"""Jobs: their records (models), how they are stored and fenced (store, locks), and long jobs' plans."""
