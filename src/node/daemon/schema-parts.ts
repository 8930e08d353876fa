/** Schema pieces shared by the config's sections. */
import { Type } from '@sinclair/typebox';

export const IfName = Type.String({ pattern: '^[A-Za-z0-9_.:@-]{1,15}$', description: 'interface name (IFNAMSIZ - 1 characters)' });

export const Ipv4Text = (description: string) => Type.String({ pattern: '^[0-9]{1,3}(\\.[0-9]{1,3}){3}$', description });
