from tests.fixtures.demo_db import small_demo_url

__all__ = ["small_demo_url"]
