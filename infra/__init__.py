"""The CDK app that deploys Impetus to AWS as one stack (``cdk.json`` at the root runs it)."""
