"""The serial link to the hand's and the trigger board's microcontrollers: framing, messages,
the pyserial link and the firmware emulator. The MCU side, in C, is in firmware_bridge/firmware/."""
