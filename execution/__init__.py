"""Paper and live trading: orders, brokers, the risk manager, the journal and the executor."""

from execution.journal import Journal
from execution.orders import MultiLegOrder, OrderLeg, client_order_id, occ_symbol
from execution.risk import RiskConfig

__all__ = ["Journal", "MultiLegOrder", "OrderLeg", "RiskConfig", "client_order_id", "occ_symbol"]
