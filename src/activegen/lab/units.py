"""The laboratory: a bead's description (`Lab`, a LAB.json file) and the unit conversions
(docs/lab.md).

With a lab, lengths are in µm and times in s (the target in µm, β and rates in 1/s, τ in s,
D_A and D_T in µm²/s), so a model force F (a drift, µm/s) and potential V (µm²/s) convert as

    γ = 6πηr                  (Stokes friction, pN·s/µm: η in Pa·s, r in µm)
    k_BT                      (pN·µm; k_B = 1.380649·10⁻²³ J/K)
    D_T = k_BT / γ            (µm²/s: the thermal noise is the bead's, not a free parameter)
    force_pN = γ F,           potential_kT = γ V / k_BT,      energies_kT = γ E / k_BT.

The optional `activity` block gives τ and D_A of the bath (an active Ornstein–Uhlenbeck
noise) or a swimmer's description, mapped as THEORY.md §3 (`physics.drivers`):
run-and-tumble speed v0 (µm/s) and tumble rate α (1/s), active Brownian speed and rotational
diffusion D_r (1/s). The optional `feedback` block (`Feedback`) is the loop's imperfections
(`lab.feedback`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from ..errors import ActivegenError

#: Boltzmann's constant (J/K, exact in SI).
K_BOLTZMANN = 1.380649e-23
#: 1 J = 10¹⁸ pN·µm.
PN_UM_PER_J = 1e18

#: key -> (unit words for messages, whether 0 is allowed)
_BEAD = {"temperature_K": "a temperature in kelvin", "viscosity_Pa_s": "a viscosity in Pa·s",
         "radius_um": "the bead's radius in µm"}
_FEEDBACK = {"update_period_s": ("the loop's update period in s", False),
             "latency_s": ("the delay before a computed force is applied, in s", True),
             "position_noise_um": ("the localisation noise's standard deviation in µm", True),
             "max_force_pN": ("the largest force the actuator applies, in pN", False)}
_ACTIVITY = {"ou": {"tau_s": "the bath's persistence time in s",
                    "d_active_um2_s": "the bath's active diffusivity in µm²/s"},
             "rtp": {"speed_um_s": "the swim speed in µm/s",
                     "tumble_rate_per_s": "the tumble rate in 1/s"},
             "abp": {"speed_um_s": "the swim speed in µm/s",
                     "rot_diffusion_per_s": "the rotational diffusion in 1/s"}}


def _number(where: str, key: str, value, what: str, zero_ok: bool = False) -> float:
    bound = ">= 0" if zero_ok else "> 0"
    ok = (not isinstance(value, bool) and isinstance(value, (int, float))
          and math.isfinite(value) and (value >= 0 if zero_ok else value > 0))
    if not ok:
        raise ActivegenError(f"{where}: {key} must be a finite number {bound} ({what}), "
                             f"got {value!r}")
    return float(value)


def _keys(where: str, block, allowed) -> dict:
    if not isinstance(block, dict):
        raise ActivegenError(f"{where} must be a JSON object, got {type(block).__name__}")
    unknown = sorted(set(block) - set(allowed))
    if unknown:
        raise ActivegenError(f"{where}: unknown key {unknown[0]!r} (allowed: "
                             f"{', '.join(allowed)})")
    return block


@dataclasses.dataclass(frozen=True)
class Feedback:
    """The loop's imperfections (each None = ideal): the update period Δ (s), the latency δ
    (s), the localisation noise σ (µm), the actuator's force limit (pN)."""

    update_period_s: float | None = None
    latency_s: float | None = None
    position_noise_um: float | None = None
    max_force_pN: float | None = None

    @property
    def is_ideal(self) -> bool:
        return all(v is None for v in dataclasses.astuple(self))

    @property
    def samples_the_position(self) -> bool:
        """A period, a latency or a localisation noise: the force is computed from measured
        positions and held (`lab.feedback.loop_replay`); a force limit alone clips the
        ideal replay's force."""
        return any(v is not None for v in (self.update_period_s, self.latency_s,
                                           self.position_noise_um))

    def to_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclasses.dataclass(frozen=True)
class Lab:
    """A bead in a bath: temperature (K), the medium's viscosity (Pa·s), the bead's radius
    (µm); activity: {"driver": "ou", "tau_s", "d_active_um2_s"} or a swimmer's
    ("rtp": speed_um_s, tumble_rate_per_s; "abp": speed_um_s, rot_diffusion_per_s) or None;
    feedback: the loop (`Feedback`)."""

    temperature_K: float
    viscosity_Pa_s: float
    radius_um: float
    activity: dict | None = None
    feedback: Feedback = Feedback()

    @property
    def gamma(self) -> float:
        """γ = 6πηr in pN·s/µm (η in Pa·s = pN·s/µm², r in µm)."""
        return 6.0 * math.pi * self.viscosity_Pa_s * self.radius_um

    @property
    def kT(self) -> float:
        """k_BT in pN·µm."""
        return K_BOLTZMANN * self.temperature_K * PN_UM_PER_J

    @property
    def d_thermal(self) -> float:
        """D_T = k_BT/γ in µm²/s."""
        return self.kT / self.gamma

    def force_pN(self, force):
        """γ F: a model force (µm/s) in pN."""
        return self.gamma * force

    def energy_kT(self, energy):
        """γ E / k_BT: a model potential or energy (µm²/s) in units of k_BT."""
        return (self.gamma / self.kT) * energy

    def tau_and_d_active(self, dim: int) -> tuple[float, float] | None:
        """(τ in s, D_A in µm²/s) of the activity block (a swimmer's by THEORY.md §3), or
        None without one."""
        a = self.activity
        if a is None:
            return None
        if a["driver"] == "ou":
            return a["tau_s"], a["d_active_um2_s"]
        from ..physics.drivers import DRIVERS

        rate = a["tumble_rate_per_s"] if a["driver"] == "rtp" else a["rot_diffusion_per_s"]
        drv = DRIVERS[a["driver"]](a["speed_um_s"], rate, dim)
        return drv.tau, drv.d_active

    def meta(self) -> dict:
        """The lab block a protocol's metadata records (γ, k_BT, D_T and the units)."""
        out = dict(temperature_K=self.temperature_K, viscosity_Pa_s=self.viscosity_Pa_s,
                   radius_um=self.radius_um, gamma_pN_s_per_um=self.gamma,
                   kT_pN_um=self.kT, d_thermal_um2_s=self.d_thermal,
                   units=dict(length="um", time="s", force_pN="gamma * force",
                              potential_kT="gamma * potential / kT"))
        if self.activity is not None:
            out["activity"] = dict(self.activity)
        return out

    @classmethod
    def from_dict(cls, data, where: str = "lab") -> "Lab":
        """Validated: every key known, every value a finite number in its range (one
        `ActivegenError` naming the key and the range)."""
        _keys(where, data, tuple(_BEAD) + ("activity", "feedback"))
        for key in _BEAD:
            if key not in data:
                raise ActivegenError(f"{where}: {key} is missing ({_BEAD[key]}, > 0)")
        bead = {k: _number(where, k, data[k], w) for k, w in _BEAD.items()}
        activity = None
        if data.get("activity") is not None:
            a = data["activity"]
            _keys(f"{where}.activity", a, ("driver",) + tuple(
                {k for v in _ACTIVITY.values() for k in v}))
            kind = a.get("driver", "ou")
            if kind not in _ACTIVITY:
                raise ActivegenError(f"{where}.activity: driver must be one of "
                                     f"{', '.join(_ACTIVITY)}, got {kind!r}")
            _keys(f"{where}.activity (driver {kind})", a, ("driver",) + tuple(_ACTIVITY[kind]))
            activity = {"driver": kind}
            for k, w in _ACTIVITY[kind].items():
                if k not in a:
                    raise ActivegenError(f"{where}.activity: {k} is missing ({w}, > 0)")
                activity[k] = _number(f"{where}.activity", k, a[k], w)
        fb = data.get("feedback")
        feedback = Feedback()
        if fb is not None:
            _keys(f"{where}.feedback", fb, tuple(_FEEDBACK))
            feedback = Feedback(**{k: _number(f"{where}.feedback", k, fb[k], *_FEEDBACK[k])
                                   for k in _FEEDBACK if fb.get(k) is not None})
        return cls(**bead, activity=activity, feedback=feedback)

    def to_dict(self) -> dict:
        out = dict(temperature_K=self.temperature_K, viscosity_Pa_s=self.viscosity_Pa_s,
                   radius_um=self.radius_um)
        if self.activity is not None:
            out["activity"] = dict(self.activity)
        if not self.feedback.is_ideal:
            out["feedback"] = self.feedback.to_dict()
        return out

    def with_feedback(self, **changes) -> "Lab":
        """The same lab with some feedback entries replaced (None: ideal)."""
        return dataclasses.replace(self, feedback=dataclasses.replace(self.feedback,
                                                                      **changes))


def load_lab(path) -> Lab:
    """A LAB.json file (docs/lab.md, "The lab file")."""
    p = Path(path)
    if not p.is_file():
        raise ActivegenError(f"--lab: file not found: {p}")
    try:
        data = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ActivegenError(f"--lab {p}: not a readable JSON file ({exc})") from None
    return Lab.from_dict(data, where=str(p))


def check_lab_protocol(lab: Lab, meta: dict, where: str = "--lab") -> None:
    """The protocol must be the lab's: its D_T is k_BT/γ, its τ and D_A the activity
    block's (where there is one), and the feedback period at most its T."""
    checks = [("D_T", meta["d_thermal"], lab.d_thermal, "µm²/s", "k_BT/γ")]
    td = lab.tau_and_d_active(len(meta.get("grid", {}).get("lo", [0])))
    if td is not None:
        checks += [("tau", meta["tau"], td[0], "s", "the activity block's"),
                   ("D_A", meta["d_active"], td[1], "µm²/s", "the activity block's")]
    for name, got, want, unit, why in checks:
        if not math.isclose(got, want, rel_tol=1e-6):
            raise ActivegenError(
                f"{where}: the protocol's {name} = {got:.4g} {unit} is not the lab's "
                f"({why}: {want:.4g} {unit}); export the protocol with --lab")
    period = lab.feedback.update_period_s
    if period is not None and period > float(meta["t_final"]):
        raise ActivegenError(
            f"{where}: feedback.update_period_s must be <= the protocol's T = "
            f"{float(meta['t_final']):g} s, got {period:g}")
    latency = lab.feedback.latency_s
    if latency is not None and latency > float(meta["t_final"]):
        raise ActivegenError(
            f"{where}: feedback.latency_s must be <= the protocol's T = "
            f"{float(meta['t_final']):g} s, got {latency:g}")
