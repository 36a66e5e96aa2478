"""Board tops, the UART protocol's decoder, YoWASP builds and their reports."""
