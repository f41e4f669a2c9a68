"""Demo data for `raasd serve --demo`: one user per role and two simulated robots."""

from __future__ import annotations

from dataclasses import dataclass

from raas.service.crud import robots as robot_crud
from raas.service.crud import users as user_crud
from raas.service.models import RobotStatus, Role
from raas.service.schemas import RobotCreate, UserCreate
from raas.service.state import ServiceState


@dataclass(frozen=True)
class DemoLogin:
    email: str
    password: str
    role: str


DEMO_USERS = (
    DemoLogin("researcher@demo.lab", "demo-researcher", Role.researcher.value),
    DemoLogin("staff@demo.lab", "demo-staff", Role.staff.value),
    DemoLogin("admin@demo.lab", "demo-admin", Role.admin.value),
)
DEMO_ROBOTS = (("shadow-1", "shadow-hand (simulated)"), ("shadow-2", "shadow-hand (simulated)"))


def seed_demo(state: ServiceState) -> list[DemoLogin]:
    """Create the demo users and robots that do not exist yet; return the logins."""
    now = state.clock()
    with state.db.write() as db:
        for login in DEMO_USERS:
            if user_crud.get_by_email(db, login.email) is None:
                user_crud.create_user(
                    db,
                    UserCreate(
                        email=login.email,
                        name=login.email.split("@")[0].title() + " (demo)",
                        role=Role(login.role),
                        password=login.password,
                    ),
                    now,
                )
        existing = {r.name for r in robot_crud.list_robots(db)}
        for name, kind in DEMO_ROBOTS:
            if name not in existing:
                robot_crud.create(
                    db,
                    RobotCreate(
                        name=name,
                        kind=kind,
                        endpoint="tcp://127.0.0.1:5555",
                        status=RobotStatus.available,
                    ),
                    state.public_key_pem,
                    now,
                )
    return list(DEMO_USERS)
