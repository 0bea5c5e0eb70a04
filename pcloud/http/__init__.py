"""The one HTTPS application that the web services mount into, and the plain-HTTP redirect."""
