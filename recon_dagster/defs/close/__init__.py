"""The month close: balance transactions by day, the balance rolled forward, its tie-out check,
and the monthly close."""
