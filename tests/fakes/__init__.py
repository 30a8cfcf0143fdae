"""Local fake ad-platform HTTP servers (Meta Marketing API, Google Ads API) used by the tests."""
