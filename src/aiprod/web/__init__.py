"""The studio (a web app in plain ES modules under ``static/``) and the API
docs pages, served by the API process from files shipped in the package."""
