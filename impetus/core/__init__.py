"""The wire contract every Impetus process shares: how jobs are encoded (codec), what a
job record and an outcome hold (jobs, claims, joboutput, retry), how a job is signed
(signing), key formats (keys), stream properties, settings and environment names
(config), boto3 clients (aws) and the exceptions. Nothing here touches a table."""
