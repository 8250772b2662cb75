"""JSON Schemas shipped with farol_data: input records, prepared records and report.json."""
