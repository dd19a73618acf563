"""The HTTP API's Lambda authorizer: refuses requests without the authkey at the edge."""
