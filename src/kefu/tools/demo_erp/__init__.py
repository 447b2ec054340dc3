"""The demo ERP of 小铺优选: its store and rules, seed data, REST app, tau2 importer, in-process adapter."""

from kefu.tools.demo_erp.app import DEFAULT_TOKEN, create_demo_erp_app, run_demo_erp
from kefu.tools.demo_erp.local import DemoOrderSystem
from kefu.tools.demo_erp.seed import SEED, seed_demo
from kefu.tools.demo_erp.store import ErpStore
from kefu.tools.demo_erp.tau2 import import_tau2_retail

__all__ = [
    "DEFAULT_TOKEN",
    "SEED",
    "DemoOrderSystem",
    "ErpStore",
    "create_demo_erp_app",
    "import_tau2_retail",
    "run_demo_erp",
    "seed_demo",
]
