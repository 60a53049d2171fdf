"""`deploy kubernetes`: CronJobs that run `run --once`, or a Deployment of the daemon.

The config travels in a ConfigMap, the token in the Secret `spaces-scheduler`
(key `HF_TOKEN`), the state on a PersistentVolumeClaim or, with
`--state-secret`, as a PostgreSQL URL in the same Secret (key
`SPACES_SCHEDULER_STATE`). Several daemon replicas need PostgreSQL: a volume
cannot be shared safely and each run must be claimed by one replica.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spaces_scheduler.deploy.base import (
    STATE_ENV,
    Entry,
    Options,
    Rendered,
    Target,
    config_text,
    entries,
    header,
    refusal,
    unique_slugs,
    window_notes,
)
from spaces_scheduler.deploy.cron_translate import Untranslatable, plain_cron
from spaces_scheduler.deploy.files import generated, to_yaml
from spaces_scheduler.errors import ConfigError

if TYPE_CHECKING:
    from spaces_scheduler.config import Config

APP = "spaces-scheduler"
SECRET = "spaces-scheduler"
CONFIG_MAP = "spaces-scheduler-config"
CLAIM = "spaces-scheduler-state"
CONFIG_DIR = "/etc/spaces-scheduler"
STATE_DIR = "/var/lib/spaces-scheduler"
TOKEN_KEY = "HF_TOKEN"
# Job names get a suffix of 11 characters; CronJob names may have 52.
NAME_ROOM = 52 - len(APP) - 1
# Exit codes of `run --once` that a retry cannot mend: 1 a run failed (a retry
# would find its slot recorded and pass without acting), 2 config or token.
FINAL_EXIT_CODES = [1, 2]
INSTALL_FAILED = 3
SECRET_HINT = (
    "Needs the Secret spaces-scheduler: kubectl create secret generic "
    "spaces-scheduler --from-literal=HF_TOKEN=hf_..."
)


class KubernetesTarget(Target):
    """Manifests under `deploy/kubernetes/`, applied with `kubectl apply -f`."""

    name = "kubernetes"
    default_output = "deploy/kubernetes"

    def render(self, config: Config, options: Options) -> Rendered:
        if options.replicas > 1 and not options.state_secret:
            raise ConfigError(
                [
                    f"deploy kubernetes --replicas {options.replicas}: several "
                    "daemons need one PostgreSQL store; put its URL in the Secret "
                    "spaces-scheduler (key SPACES_SCHEDULER_STATE) and pass "
                    "--state-secret."
                ]
            )
        text = config_text(config)
        folder = options.output
        manifests: dict[str, dict[str, Any]] = {
            "configmap.yaml": _config_map(text, Path(config.path).name)
        }
        if not options.state_secret:
            manifests["pvc.yaml"] = _claim()

        pod = _PodParts(config, options, text)
        if options.mode == "daemon":
            manifests["deployment.yaml"] = _deployment(pod, options)
        else:
            manifests.update(_cron_jobs(config, pod))

        files = tuple(
            generated(folder / name, _document(options, manifest))
            for name, manifest in sorted(manifests.items())
        )
        # The daemon reconciles windows itself; one-shot runs do not.
        notes = () if options.mode == "daemon" else window_notes(config, self.name)
        return Rendered(files, folder, notes)


def _document(options: Options, manifest: dict[str, Any]) -> str:
    hint = f"# {SECRET_HINT}"
    if options.state_secret:
        hint += " --from-literal=SPACES_SCHEDULER_STATE=postgresql://..."
    return f"{header(options)}{hint}\n---\n{to_yaml(manifest)}"


def _labels(component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": APP,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": APP,
    }


def _config_map(text: str, filename: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONFIG_MAP, "labels": _labels("config")},
        "data": {filename: text},
    }


def _claim() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": CLAIM, "labels": _labels("state")},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }


class _PodParts:
    """What every pod of this config carries: volumes, environment, the script."""

    def __init__(self, config: Config, options: Options, text: str) -> None:
        self.config_file = f"{CONFIG_DIR}/{Path(config.path).name}"
        self.options = options
        self.digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        hub = getattr(config, "hub", None)
        self.token_env = getattr(hub, "token_env", None) or TOKEN_KEY

    def env(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = [
            _secret_env(self.token_env, TOKEN_KEY),
            {"name": "HOME", "value": "/tmp"},
            {"name": "HF_HOME", "value": "/tmp/hf"},
            {"name": "PIP_DISABLE_PIP_VERSION_CHECK", "value": "1"},
        ]
        if self.options.state_secret:
            found.append(_secret_env(STATE_ENV, STATE_ENV))
        else:
            found.append(
                {"name": STATE_ENV, "value": f"sqlite:///{STATE_DIR}/state.db"}
            )
        if self.options.install:
            found.append(
                {"name": "SPACES_SCHEDULER_INSTALL", "value": self.options.install}
            )
        return found

    def command(self, run: str) -> list[str]:
        """Return the container command: install (if asked), then `run`."""
        if not self.options.install:
            return ["/bin/sh", "-c", f"exec spaces-scheduler {run}"]
        script = (
            "python -m venv /tmp/venv && /tmp/venv/bin/pip install --quiet "
            f'--no-cache-dir "$SPACES_SCHEDULER_INSTALL" || exit {INSTALL_FAILED}\n'
            f"exec /tmp/venv/bin/spaces-scheduler {run}\n"
        )
        return ["/bin/sh", "-c", script]

    def volumes(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = [
            {"name": "config", "configMap": {"name": CONFIG_MAP}}
        ]
        if not self.options.state_secret:
            found.append(
                {"name": "state", "persistentVolumeClaim": {"claimName": CLAIM}}
            )
        return found

    def mounts(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}
        ]
        if not self.options.state_secret:
            found.append({"name": "state", "mountPath": STATE_DIR})
        return found

    def pod_spec(self, command: list[str], *, restart: str) -> dict[str, Any]:
        container = {
            "name": APP,
            "image": self.options.image,
            "command": command,
            "env": self.env(),
            "volumeMounts": self.mounts(),
            "resources": {
                "requests": {"cpu": "50m", "memory": "128Mi"},
                "limits": {"memory": "512Mi"},
            },
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
            },
        }
        return {
            "restartPolicy": restart,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "runAsGroup": 1000,
                "fsGroup": 1000,
            },
            "containers": [container],
            "volumes": self.volumes(),
        }

    def template(self, component: str, spec: dict[str, Any]) -> dict[str, Any]:
        # The config's digest rolls the pods when the config changes.
        return {
            "metadata": {
                "labels": _labels(component),
                "annotations": {"spaces-scheduler/config-sha256": self.digest},
            },
            "spec": spec,
        }


def _secret_env(name: str, key: str) -> dict[str, Any]:
    return {
        "name": name,
        "valueFrom": {"secretKeyRef": {"name": SECRET, "key": key}},
    }


def _cron_jobs(config: Config, pod: _PodParts) -> dict[str, dict[str, Any]]:
    items = entries(config, target="kubernetes")
    names = unique_slugs([entry.name for entry in items], limit=NAME_ROOM)
    jobs, problems = {}, []
    for entry in items:
        try:
            cron = plain_cron(entry.spec)
        except Untranslatable as exc:
            problems.append(refusal(config, entry, "kubernetes", str(exc)))
            continue
        jobs[f"cronjob-{names[entry.name]}.yaml"] = _cron_job(
            entry, cron, f"{APP}-{names[entry.name]}", pod
        )
    if problems:
        raise ConfigError(problems)
    return jobs


def _cron_job(entry: Entry, cron: str, name: str, pod: _PodParts) -> dict[str, Any]:
    # `--at` runs the newest slot even when the state is new; with state, the
    # slots missed since the last one are caught up once.
    run = f'run --once --config {pod.config_file} --schedule "$1" --at "$2"'
    command = [*pod.command(run), "sh", entry.name, entry.spec.text]
    spec = pod.pod_spec(command, restart="Never")
    job = {
        "backoffLimit": 2,
        "activeDeadlineSeconds": _seconds(2 * entry.wait + timedelta(minutes=10)),
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": APP,
                        "operator": "In",
                        "values": FINAL_EXIT_CODES,
                    },
                },
                {
                    "action": "Ignore",
                    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                },
            ]
        },
        "template": pod.template("run-once", spec),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": name,
            "labels": _labels("run-once"),
            "annotations": {"spaces-scheduler/schedule": entry.name},
        },
        "spec": {
            "schedule": cron,
            "timeZone": entry.timezone,
            "concurrencyPolicy": "Forbid",
            # Below 10 s the controller, which looks every 10 s, may never start it.
            "startingDeadlineSeconds": max(10, _seconds(entry.misfire_grace)),
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {"spec": job},
        },
    }


def _deployment(pod: _PodParts, options: Options) -> dict[str, Any]:
    run = f"run --config {pod.config_file}"
    spec = pod.pod_spec(pod.command(run), restart="Always")
    # One pod at a time on a volume: two daemons must not share a SQLite file.
    strategy = (
        {"type": "RollingUpdate"} if options.state_secret else {"type": "Recreate"}
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": APP, "labels": _labels("daemon")},
        "spec": {
            "replicas": options.replicas,
            "strategy": strategy,
            "selector": {
                "matchLabels": {
                    "app.kubernetes.io/name": APP,
                    "app.kubernetes.io/component": "daemon",
                }
            },
            "template": pod.template("daemon", spec),
        },
    }


def _seconds(duration: timedelta) -> int:
    return int(duration.total_seconds())
