"""jaxgen's XLA:CPU flags: added once, never over a user's own setting, opt-out honoured."""

import pytest

from jaxgen.training import xla_flags


@pytest.fixture
def measured_jaxlib(monkeypatch):
    monkeypatch.setattr(xla_flags, "_jaxlib_version", lambda: xla_flags.JAXLIB_VERSIONS[0])


def test_adds_the_flags_to_an_empty_environment_once(measured_jaxlib):
    env = {}
    assert xla_flags.set_cpu_flags(env) == list(xla_flags.CPU_FLAGS)
    assert env["XLA_FLAGS"] == " ".join(xla_flags.CPU_FLAGS)
    assert xla_flags.set_cpu_flags(env) == []
    assert env["XLA_FLAGS"] == " ".join(xla_flags.CPU_FLAGS)


def test_keeps_the_users_flags_and_their_own_value(measured_jaxlib):
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    xla_flags.set_cpu_flags(env)
    assert env["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=4",
                                        *xla_flags.CPU_FLAGS]
    mine = "--xla_cpu_experimental_ynn_fusion_type="
    env = {"XLA_FLAGS": mine}
    assert xla_flags.set_cpu_flags(env) == []
    assert env["XLA_FLAGS"] == mine


def test_opt_out_and_unmeasured_jaxlib_add_nothing(measured_jaxlib, monkeypatch):
    env = {"JAXGEN_NO_XLA_FLAGS": "1"}
    assert xla_flags.set_cpu_flags(env) == [] and "XLA_FLAGS" not in env
    monkeypatch.setattr(xla_flags, "_jaxlib_version", lambda: (0, 7))
    assert xla_flags.set_cpu_flags({}) == []

