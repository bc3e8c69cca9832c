"""Day 2: plan (pure), apply engine, journal and release records."""
