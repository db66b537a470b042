"""ttslab's federated training on Flower 1.41 (an optional extra: ``pip install .[federated]``).

* :mod:`~ttslab.federated.flower.app`: the ServerApp and ClientApp (Message API) around
  :func:`~ttslab.federated.client_update`, the ttslab strategies and :func:`~ttslab.federated.evaluate`;
  a run is a :class:`FlowerRun` of plain values naming a task factory;
* :mod:`~ttslab.federated.flower.engines`: ttslab's simulator on the same run
  (:func:`run_ttslab_simulator`), the Simulation Engine (Ray, :func:`run_simulation_engine`)
  and the Deployment Engine on 127.0.0.1 (:class:`LocalDeployment`, :func:`run_deployment_engine`);
  ``python -m ttslab.federated.flower.deployment`` is its command line.

``import ttslab`` and ``import ttslab.federated`` never import Flower; this package does, and says
how to install it when it is missing.
"""

try:
    import flwr
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("ttslab.federated.flower needs Flower: pip install '.[federated]' (flwr[simulation]==1.41.0)"
                      ) from exc

FLOWER_VERSION = flwr.__version__  #: the installed Flower (the app is written for the 1.41 Message API)

from ttslab.federated.flower.app import (RUN_KEY, FlowerRun, client_app, from_record, load_task, make_client_app,
                                         make_server_app, make_server_strategy, server_app, to_record)
from ttslab.federated.flower.engines import (LocalDeployment, PortInUseError, check_port_free, flower_environment,
                                             free_port, load_result, run_deployment_engine, run_simulation_engine,
                                             run_ttslab_simulator, write_app)

__all__ = ["FLOWER_VERSION", "RUN_KEY", "FlowerRun", "client_app", "from_record", "load_task", "make_client_app", "make_server_app",
           "make_server_strategy", "server_app", "to_record", "LocalDeployment", "PortInUseError",
           "check_port_free", "flower_environment", "free_port", "load_result", "run_deployment_engine",
           "run_simulation_engine", "run_ttslab_simulator", "write_app"]
