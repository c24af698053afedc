"""Days that stay true: the sensor that re-opens days Stripe changed after they were reconciled,
in both domains, and the weekly re-check."""
