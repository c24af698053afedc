"""Real stand-ins for outside services (a local Stripe API) used by tests, the demo and
benchmarks."""
