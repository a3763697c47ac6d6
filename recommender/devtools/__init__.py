"""Development tools kept apart from the product: the clinic simulator and demo seeding.

No product module imports these; the CLI, the app's first start and the
benchmarks pass the simulator's truth in.
"""
