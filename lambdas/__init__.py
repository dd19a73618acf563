"""AWS Lambda functions of Impetus (thin handlers; the logic lives in ``impetus``)."""
