"""The month close's edges: the GL mapping file, the journal CSV and the workbook."""
