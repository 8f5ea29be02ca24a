"""Drop-in layout (this folder as Airflow's ``plugins/``): registers the matting plugin, unless the
package is installed, whose ``airflow.plugins`` entry point registers it already."""

from importlib.metadata import entry_points

if not any(ep.value.startswith("matting.plugin") for ep in entry_points(group="airflow.plugins")):
    from matting.plugin import MattingPlugin  # noqa: F401 - found by Airflow's plugin loader
