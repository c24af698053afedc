"""What the tests share: data builders, databases, instances, receivers and a small world."""
