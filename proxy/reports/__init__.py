"""Reading usage: report queries over the raw rows and the daily rollups, the admin dashboard,
and the live feed's watching side (the WebSocket consumer)."""
