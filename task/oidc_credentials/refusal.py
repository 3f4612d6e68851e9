"""What a refused exchange shows besides the catalogue's verdict: the trust that would accept this token.

:func:`render_trust` renders the cloud-side trust from the live token's claims with the same templates as
the ``oidc-credentials trust`` command (:mod:`oidc_credentials.trust`), so the snippet in an error message
and the one the CLI writes never drift apart. It returns "" when the templates cannot render it (facts a
template refuses, or a task built without the trust module); callers then keep their own plain statement.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import TaskError

if TYPE_CHECKING:
    from .oidc import Claims

#: cloud -> (trust module function, output format)
RENDERERS = {
    "aws": ("render_aws", "json"),
    "azure": ("render_azure", "az"),
    "gcp": ("render_gcp", "gcloud"),
    "vault": ("render_vault", "cli"),
}


def render_trust(cloud: str, claims: Claims, **context: Any) -> str:
    """The trust for ``cloud`` ("aws", "azure", "gcp", "vault") that accepts ``claims``; "" when it cannot be rendered.

    ``context`` is what that cloud's template needs besides the claims (AWS: ``account_id``, ``partition``,
    ``role_name``; Azure: ``app_id``; GCP: ``project_number``, ``service_account``, ``pool``, ``provider``;
    Vault: ``role``, ``policies``, ``mount``).
    """
    try:
        trust: Any = importlib.import_module("oidc_credentials.trust")
    except ImportError:
        return ""
    function, fmt = RENDERERS[cloud]
    try:
        facts = trust.Facts(
            issuer=claims.iss, subject=claims.sub, audience=claims.aud, tenant_id=str(claims.raw.get("tid", ""))
        )
        text: str = getattr(trust, function)(trust.complete(facts), fmt, **context)
    except TaskError:
        return ""
    return text.strip()
