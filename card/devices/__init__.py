"""Device bindings: a card activated on one phone at a time, and the offline QR authorisation."""

from card.devices.service import Activation, DeviceService, parse_device_key

__all__ = ["Activation", "DeviceService", "parse_device_key"]
