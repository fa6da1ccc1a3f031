from django.http import HttpRequest

from tenants.models import Council


def council(request: HttpRequest) -> dict[str, object]:
    """The council whose host this is (None on the platform's own host)."""
    tenant = getattr(request, "tenant", None)
    if isinstance(tenant, Council) and not tenant.is_platform:
        return {"council": tenant, "service_name": f"Patchwork – {tenant.name}"}
    return {"council": None, "service_name": "Patchwork platform"}
