"""Where results are kept: the report store (reports, line items, sync audit) and the asset IO
managers."""
