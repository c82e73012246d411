"""Business rules. No HTTP, SQL, Redis, environment or wall-clock reads here."""
