"""The console's roles as Django groups with permissions, kept in sync after every migrate.

Marketing runs the hub; Sales works the lead board and nothing else; Auditors read everything and change
nothing. Superusers pass every check. Views check permissions (never group names), so a site can shape
its own groups in the admin; `roles_sync` only adds what a role needs and never takes away."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

LEAD_PERMISSIONS = ("view_leads", "change_leads")

# group: codenames of the tracking app it holds; "*" = every one, "view_*" = every view_ permission.
ROLES: dict[str, tuple[str, ...]] = {
    "Marketing": ("*",),
    "Sales": LEAD_PERMISSIONS,
    "Auditor": ("view_*", "view_leads"),
}


def role_permissions(spec: tuple[str, ...]) -> list[Permission]:
    perms = Permission.objects.filter(content_type__app_label="tracking")
    chosen: dict[int, Permission] = {}
    for item in spec:
        if item == "*":
            matched = perms
        elif item.endswith("*"):
            matched = perms.filter(codename__startswith=item[:-1])
        else:
            matched = perms.filter(codename=item)
        chosen.update((p.pk, p) for p in matched)
    return list(chosen.values())


def roles_sync(**kwargs) -> None:
    """Create the role groups and give them their permissions (post_migrate receiver)."""
    for name, spec in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*role_permissions(spec))
