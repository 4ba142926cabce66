"""client_daemon"""
