"""Where the data comes from: the Stripe API, the application's payments table, the bank statement
table."""
