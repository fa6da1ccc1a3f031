"""Patchwork's REST API (/api/v1/): `auth` says who is calling, `views` answers them."""
