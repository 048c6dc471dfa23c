"""Root pytest configuration: how notebooks are validated under nbval."""


def pytest_collectstart(collector):
    # Warnings printed on stderr are not results; never compare them.
    if hasattr(collector, "skip_compare"):
        collector.skip_compare += ("stderr",)
