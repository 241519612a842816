"""Active methods: a real active particle in an external force F acting on x only,

    dx = [F(x, T−s) + η] ds + √(2D_T) dW̄,   η a self-propulsion (a driver),

stepped with η's trapezoid mean over a step (`stepping.active_update`): for a force
independent of η this only moves the end point by ½h(η_end − η_start); for fox-sc, whose
m̂ is fitted to the η before the step, it cancels the O(h/τ) excess spread of the discrete
steps (docs/beyond_first_order.md).

Every force with a potential (`forces.Force`: F and V = −∫F) becomes a method with
`register_force`: the built-in `fox` (F_F = −∇V_F), `ucn` (F_U) and `naive` (F_0) are
registered here, user forces through `activegen.register_force`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..physics.drivers import OUDriver
from ..physics.energetics import Energetics
from ..errors import ActivegenError, check_process
from ..physics.forces import (
    FORCES,
    Force,
    force_driver_correction,
    force_jacobian_norm,
    saturate,
)
from ..physics.stepping import active_update, linear_coefficients, thermal_amplitude, thermal_kick
from ..physics.stepping import default_dt as euler_default_dt
from .api import (
    Request,
    add_energetics,
    check_driver,
    check_run,
    default_driver,
    execute,
    uniform_grid,
)
from .engine import Stepper, batched, derivs_at, score_log_density
from .schemes import SCHEMES, active_heun_default_dt, check_scheme, default_scheme
from .registry import Method, Plan, register_method


def _active_init(init_x, driver, dtype):
    """init(key, n) of an active stepper: x from init_x (carried (d, n)), η from the
    driver's stationary law, the diagnostic's running max at 0."""

    def init(key, n):
        k1, k2 = jax.random.split(key)
        x = init_x(k1, n).T
        return {"x": x, "eta": driver.init(k2, x.shape, dtype), "tjf": jnp.zeros((), dtype)}

    return init


def active_stepper(field, init_x, p, t_final: float, dtype, driver) -> Stepper:
    """The active particle: field(t, x, η) -> (F, ‖∇F‖ or None) with x, η of shape (d, N)
    (η only for fitted forces), init_x(key, n) -> (n, d) the start, `driver` the
    self-propulsion. The carry keeps "tjf", the largest ensemble mean of τ‖∇F‖."""
    if p.tau == 0:
        raise ActivegenError("tau must be > 0 for an active driver (use 'passive' at tau = 0)")

    init = _active_init(init_x, driver, dtype)

    def step(c, i, s, h, key):
        x, eta = c["x"], c["eta"]
        f, jn = field(t_final - s, x, eta)
        k1, k2 = jax.random.split(key)
        eta_new = driver.step(eta, h, k2)
        x_new = active_update(x, f, eta, eta_new, h)
        if p.d_thermal > 0:
            x_new = thermal_kick(x_new, thermal_amplitude(p.d_thermal, h), k1)
        tjf = c["tjf"] if jn is None else jnp.fmax(c["tjf"], p.tau * jnp.mean(jn))
        return {"x": x_new, "eta": eta_new, "tjf": tjf}

    return Stepper(init, step)


def active_heun_stepper(field, init_x, p, t_final: float, dtype, driver) -> Stepper:
    """`active_stepper`'s particle with a second-order step (scheme "heun"; docs/theory.md,
    time stepping). With F = βx + G, A = e^{βh}, φ = (e^{βh} − 1)/(βh), ψ = (e^{2βh} − 1)/(2βh):

        η′, I = driver step and ∫η ds over the step (exact joint draw for the OU driver,
                the trapezoid ½h(η + η′) for the others)
        x̃  = A x + φ h G(x, t) + φ I + √(2D_T h ψ) ξ                (exponential Euler)
        x′ = A x + ½h [A G(x, t) + G(x̃, t − h)] + φ I + √(2D_T h ψ) ξ   (trapezoid on e^{β(h−u)}G)

    βx is integrated exactly, G at second order (two force evaluations per step; a fitted
    field is fitted to (x, η) at the start and to (x̃, η′) at the end). Uniform grids only
    (h a Python float)."""
    if p.tau == 0:
        raise ActivegenError("tau must be > 0 for an active driver (use 'passive' at tau = 0)")
    integral = getattr(driver, "step_integral", None)
    beta = p.beta

    init = _active_init(init_x, driver, dtype)

    def step(c, i, s, h, key):
        x, eta = c["x"], c["eta"]
        t = t_final - s
        a, phi, psi = linear_coefficients(beta, h)
        f, jn = field(t, x, eta)
        g0 = f - beta * x
        k1, k2 = jax.random.split(key)
        if integral is not None:
            eta_new, inc = integral(eta, h, k2)
        else:
            eta_new = driver.step(eta, h, k2)
            inc = 0.5 * h * (eta + eta_new)
        base = a * x + phi * inc
        if p.d_thermal > 0:
            base = thermal_kick(base, thermal_amplitude(p.d_thermal, h * psi), k1)
        x_pred = base + (phi * h) * g0
        f1, _ = field(t - h, x_pred, eta_new)
        x_new = base + (0.5 * h) * (a * g0 + f1 - beta * x_pred)
        tjf = c["tjf"] if jn is None else jnp.fmax(c["tjf"], p.tau * jnp.mean(jn))
        return {"x": x_new, "eta": eta_new, "tjf": tjf}

    return Stepper(init, step)


def scheme_stepper(scheme: str):
    """The active stepper of a scheme ("euler" or "heun")."""
    return active_heun_stepper if check_scheme(scheme) == "heun" else active_stepper


def active_default_dt(req) -> float:
    """The default step of an active method: `active_heun_default_dt(τ)` for scheme "heun" with a
    driver whose ∫η is drawn exactly (`step_integral`: the OU driver), else the old
    `stepping.default_dt(τ)` (scheme "euler", or a driver whose ∫η is the trapezoid: its
    error is O(h/τ) per step, e.g. run-and-tumble, active Brownian)."""
    tau = req.process.tau
    exact_integral = req.driver is None or hasattr(req.driver, "step_integral")
    if req.options["scheme"] == "heun" and exact_integral:
        return active_heun_default_dt(tau)
    return euler_default_dt(tau)


def score_field(force, score, p, dtype, kappa: float = 0.0, order: int = 2):
    """field(t, x, η) -> (F, ‖∇F_0‖) for a force F(process, t, x, derivs) built from a score
    model; with κ ≠ 0 plus the driver's fourth-order correction (saturated). order: the
    derivatives the force needs (`forces.Force.order`; a learned model computes only those)."""

    def field(t, x, eta):
        dv = derivs_at(score, score.prepare(t, dtype), x, max(order, 2) if kappa else order)
        f = force(p, t, x, dv)  # the forces take (d, N) ensembles as they are
        if kappa:
            f = f + saturate(force_driver_correction(p, kappa, t, x, dv), f)
        return f, force_jacobian_norm(p, t, dv)

    return field


def marginal_start(score, t_final: float, dtype):
    """init_x(key, n): the exact diffused marginal p(x, T) of the score model."""
    return lambda key, n: score.sample_marginal(key, n, t_final, dtype)


def score_potential(potential, score, p, t_final: float, dtype):
    """u(i, s, x, carry) -> U(x, s) = V(x, T − s) of a potential(process, t, x, derivs)
    (`energetics.Energetics.potential`)."""

    def u(i, s, x, carry):
        t = t_final - s
        return potential(p, t, x, batched(score, "derivs", score.prepare(t, dtype), x))

    return u


def score_force(force: Force, score, p, t_final: float, dtype):
    """f(i, s, x, carry) -> F(x, T − s) (d, N) of a `forces.Force`."""

    def f(i, s, x, carry):
        t = t_final - s
        return force.force(p, t, x, derivs_at(score, score.prepare(t, dtype), x, force.order))

    return f


def active_entropy_terms(req, drv, force_fn, log_density=None) -> dict:
    """Energetics fields of the x-path entropy production (`physics.energetics`): only at
    D_T = 0 with the OU driver (a Gaussian path weight of η); {} otherwise."""
    p = req.process
    if p.d_thermal != 0 or not isinstance(drv, OUDriver):
        return {}
    return dict(force=force_fn, active_noise=(p.tau, p.d_active), log_density=log_density)


def force_energetics(force: Force, driver_correction: bool):
    """Method.energetics of a force method: U = V(x, T − s) of force.potential; refused
    where the non-Gaussian driver's correction (not a gradient) is added."""

    def energetics(req, plan) -> Energetics:
        drv = req.driver or default_driver(req.process)
        if driver_correction and req.driver_correction and getattr(drv, "kappa", 0.0) != 0.0:
            raise ActivegenError(
                "energetics needs a force with a potential; the driver correction of "
                f"{type(drv).__name__} is not a gradient (use driver_correction=False / "
                "--no-driver-correction)"
            )
        from ..physics.targets import GaussianMixture

        score, p, t_final, dtype = req.score, req.process, req.t_final, req.dtype
        log_density = (score_log_density(score, t_final, dtype)  # log p exact: the boundary
                       if isinstance(req.target, GaussianMixture) else None)
        fn = score_force(force, score, p, t_final, dtype)
        return Energetics(score_potential(force.potential, score, p, t_final, dtype),
                          **active_entropy_terms(req, drv, fn, log_density))

    return energetics


def force_method(name: str, force: Force, *, summary: str = "", aliases=(),
                 first_order: bool = True, driver_correction: bool = False,
                 validity_map: bool = False) -> Method:
    """The Method of an active particle in F = force.force (potential force.potential).
    driver_correction: add the non-Gaussian driver's correction δF (`fox`)."""

    def build(req) -> Plan:
        drv = req.driver or default_driver(req.process)
        corr = driver_correction and req.driver_correction
        kappa = getattr(drv, "kappa", 0.0) if corr else 0.0
        field = score_field(force.force, req.score, req.process, req.dtype, kappa,
                            force.order)
        scheme = req.options["scheme"]
        stepper = scheme_stepper(scheme)(
            field, marginal_start(req.score, req.t_final, req.dtype), req.process,
            req.t_final, req.dtype, drv)
        info = dict(driver=type(drv).__name__ if req.driver is not None else "OUDriver",
                    driver_correction=bool(corr and getattr(req.driver, "kappa", 0.0) != 0.0),
                    scheme=scheme)
        return Plan(stepper, uniform_grid(req), info=info,
                    tau_steps=SCHEMES[scheme].tau_steps(req.process.tau))

    return Method(name, build, summary=summary, aliases=tuple(aliases), active=True,
                  carries_eta=True, first_order=first_order, force=force,
                  validity_map=validity_map,
                  energetics=force_energetics(force, driver_correction),
                  options={"scheme": "heun"}, default_dt=active_default_dt)


def register_force(name: str, force, potential, *, summary: str = "", aliases=(),
                   first_order: bool = True, replace: bool = False) -> Method:
    """Make a force a sampling method (Python API and `--method`), exportable as a protocol.

    force(process, t, x, derivs) -> F and potential(process, t, x, derivs) -> V with
    F = −∇_x V, both on ensembles stored particles last (x (d, N), `scores.ScoreDerivs`
    with trailing particle axes; see `forces.force_naive` for the pattern). first_order:
    the run warns when τ‖∇F_0‖ exceeds the validity threshold.

    The output shapes are checked at registration (`jax.eval_shape` on small ensembles in
    d = 1 and 2: refused where both fail) and whenever the force is traced (F must have the shape of x, V that of x
    without its vector axis): a wrong shape, or a scalar that would be broadcast, is one
    `ActivegenError` naming the expected shape."""
    if not (callable(force) and callable(potential)):
        raise ActivegenError("register_force needs callables force(process, t, x, derivs) "
                             "and potential(process, t, x, derivs)")
    checked = Force(_shape_checked(force, name, "force"),
                    _shape_checked(potential, name, "potential"))
    check_force_shapes(checked, name)
    return register_method(force_method(name, checked, summary=summary,
                                        aliases=aliases, first_order=first_order),
                           replace=replace)


def _shape_checked(fn, name: str, what: str):
    """fn(process, t, x, derivs) that checks, each time it is traced, that its output has
    the expected shape (force: that of x, (d, N) or (d,) for one point; potential: (N,) or
    ()) and turns an error raised inside it into one `ActivegenError`."""
    import functools

    def wrapped(p, t, x, dv):
        shape = tuple(jnp.shape(x))
        try:
            out = fn(p, t, x, dv)
        except ActivegenError:
            raise
        except Exception as exc:  # a raw JAX/NumPy error from the user's function
            raise ActivegenError(
                f"register_force {name!r}: {what}(process, t, x, derivs) failed on x of shape "
                f"{shape}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            ) from exc
        want = shape if what == "force" else shape[1:]
        got = tuple(jnp.shape(out))
        if got != want:
            axes = ("(d, N)" if len(shape) == 2 else "(d,)") if what == "force" else (
                "(N,)" if len(shape) == 2 else "() (a scalar)")
            raise ActivegenError(
                f"register_force {name!r}: {what}(process, t, x, derivs) must return "
                f"{'F' if what == 'force' else 'V'} of shape {axes} = {want} for x of shape "
                f"{shape} (vector axis first, particles last), got shape {got}")
        return out

    return functools.wraps(fn)(wrapped)


def check_force_shapes(force: Force, name: str, n: int = 5) -> None:
    """Trace force and potential (`jax.eval_shape`, no computation) on ensembles x (d, n)
    with d = 1 and 2 and matching batched `ScoreDerivs`: refused (the d = 2 error) when it
    fails in both, by a wrong output shape or an error; a force written for one dimension
    only may fail in the other, and is checked again whenever it is traced (at first use)."""
    from ..physics.processes import ActiveOU
    from ..physics.scores import ScoreDerivs

    proc = ActiveOU(1.0, 0.0, 1.0, 0.1)
    f32 = jnp.float32
    errors = []
    for d in (2, 1):
        sds = jax.ShapeDtypeStruct
        x = sds((d, n), f32)
        dv = ScoreDerivs(sds((n,), f32), sds((d, n), f32), sds((d, d, n), f32), sds((d, n), f32))
        try:
            for fn in (force.force, force.potential):
                jax.eval_shape(lambda t, x, dv, fn=fn: fn(proc, t, x, dv), sds((), f32), x, dv)
        except ActivegenError as exc:
            errors.append(exc)
    if len(errors) == 2:
        raise errors[0]


def field_method() -> Method:
    """The description `sample_field` runs under: an active particle in a given field."""
    return Method("field", None, active=True, carries_eta=True, first_order=True,
                  default_dt=active_default_dt)


def sample_field(
    field,
    init_x,
    process,
    n: int,
    key=None,
    *,
    seed: int | None = None,
    t_final: float = 6.0,
    dt: float | None = None,
    save_every: int | None = None,
    driver=None,
    dim: int | None = None,
    dtype=None,
    progress: bool = False,
    warn: bool = True,
    chunk_size: int | None = None,
    desc: str = "field",
    potential=None,
    energetics: bool = False,
    scheme: str | None = None,
) -> Sampled:
    """Active particles in a given external force field, no score involved:
    dx = [F(x, T−s) + η] ds + √(2D_T) dW̄.

    field(t, x) -> (F (N, d), ‖∇F‖ (N,) or None) at forward time t = T − s (jax-traceable);
    init_x(key, n) -> (n, d) start. driver defaults to OUDriver(τ, D_A). Used to replay an
    exported protocol (a force tabulated on a grid). potential(t, x (N, d)) -> V (N,) with
    F = −∇V: with energetics=True the run's energetics in that potential are added to info
    (`physics.energetics`; scheme "euler" only). scheme: "heun" (second order, default
    step `active_heun_default_dt`; the default) or "euler" (the first-order step of
    `active_stepper`; the default with energetics=True).
    """
    n, t_final, dt, key, save_every, chunk_size = check_run(
        n, t_final, dt, key, seed, save_every, chunk_size)
    check_process(process)
    if energetics and potential is None:
        raise ActivegenError("energetics needs the field's potential (potential=)")
    drv = driver or default_driver(process)
    if dim is not None:
        check_driver(drv, process, dim)
    spec = field_method()
    if scheme is None:
        scheme = default_scheme("heun", energetics=energetics)
    req = Request(None, None, process, n, t_final, dt, dtype or jnp.result_type(float), drv,
                  False, {"scheme": check_scheme(scheme)}, method=spec)

    def engine_field(t, x, eta):  # the engine carries x as (d, N); `field` takes (N, d)
        f, jn = field(t, x.T)
        return f.T, jn

    stepper = scheme_stepper(scheme)(engine_field, init_x, process, t_final, req.dtype, drv)
    plan = Plan(stepper, uniform_grid(req),
                info={"driver": type(drv).__name__, "scheme": scheme},
                tau_steps=SCHEMES[scheme].tau_steps(process.tau))
    if energetics:
        plan = add_energetics(plan, Energetics(
            lambda i, s, x, carry: potential(t_final - s, x.T),
            **active_entropy_terms(req, drv, lambda i, s, x, carry: field(t_final - s,
                                                                          x.T)[0].T)))
    return execute(spec, plan, req, key, save_every=save_every, progress=progress,
                   chunk_size=chunk_size, warn=warn, desc=desc, d=dim)


_SUMMARY = {
    "fox": "effective potential V_F (Fox, first order in tau); needs S, grad S, grad(div S)",
    "ucn": "unified-colored-noise potential V_U (first order); needs S, grad S, grad(div S)",
    "naive": "zeroth-order force F_0 = beta x + D-bar S; needs S",
}
for _name in ("fox", "ucn", "naive"):
    register_method(force_method(_name, FORCES[_name], summary=_SUMMARY[_name],
                                 driver_correction=_name == "fox",
                                 validity_map=_name in ("fox", "naive")))
